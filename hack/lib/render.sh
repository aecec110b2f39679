# Configuration files of the local cluster live in hack/templates/ as they are written, with
# ${NAME} where a value goes. render fills them in (pure bash: envsubst is Debian's
# gettext-base, which a minimal bookworm does not have).
#
#   render TEMPLATE [NAME | NAME=VALUE]...   prints hack/templates/TEMPLATE
#
# NAME takes the value of the shell variable NAME, NAME=VALUE the value given. Only ${NAME}
# is replaced (never $NAME), in one pass (a value is not rendered again), byte for byte
# otherwise; a ${NAME} without a value is an error.
render() {
  local template=$1 arg name text="" rest; shift
  local -A value=()
  for arg in "$@"; do
    if [[ $arg == *=* ]]; then value[${arg%%=*}]=${arg#*=}; else value[$arg]=${!arg}; fi
  done
  IFS= read -r -d '' rest < "$HACK/templates/$template" || true
  while [[ $rest =~ \$\{([A-Za-z_][A-Za-z0-9_]*)\} ]]; do
    name=${BASH_REMATCH[1]}
    [[ -v "value[$name]" ]] || die "render $template: no value for \${$name}"
    text+=${rest%%"${BASH_REMATCH[0]}"*}${value[$name]}
    rest=${rest#*"${BASH_REMATCH[0]}"}
  done
  printf '%s' "$text$rest"
}
