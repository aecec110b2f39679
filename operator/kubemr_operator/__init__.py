"""The kubemr operator: runs MapReduceJob resources as map and reduce pods."""
