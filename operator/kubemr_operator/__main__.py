"""`python -m kubemr_operator`: run the operator for every namespace."""

import kopf

import kubemr_operator.handlers  # noqa: F401  (registers the handlers)

if __name__ == "__main__":
    kopf.run(clusterwide=True, standalone=True)
