"""`python -m kubemr_operator`: run the operator for every namespace, or for those listed in
KUBEMR_NAMESPACES."""

import os

import kopf

import kubemr_operator.handlers  # noqa: F401  (registers the handlers)
from kubemr_operator.handlers import settings

if __name__ == "__main__":
    kopf.configure(verbose=bool(os.environ.get("KUBEMR_DEBUG")))
    if settings.namespaces:
        kopf.run(namespaces=list(settings.namespaces), standalone=True)
    else:
        kopf.run(clusterwide=True, standalone=True)
