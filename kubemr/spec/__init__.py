"""The job manifest: its schema (the CRD), its names and labels."""
