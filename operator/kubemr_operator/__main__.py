"""`python -m kubemr_operator`: run the operator for every namespace."""

import os

import kopf

import kubemr_operator.handlers  # noqa: F401  (registers the handlers)

if __name__ == "__main__":
    kopf.configure(verbose=bool(os.environ.get("KUBEMR_DEBUG")))
    kopf.run(clusterwide=True, standalone=True)
