"""The MapReduce engine, plain Python with no Kubernetes in it. In the order data flows:

plan (splits) -> formats (read records) -> maptask (user mapper, mapbuffer, spill)
-> partition and sortedruns (the shuffle's files and their merge) -> reducetask -> commit.
"""
