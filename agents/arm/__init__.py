"""The arm host's agent: the background writer's wrapper (writer.py), which runs a writer only
while the edge's lease (lease.py) lets this arm's colour write."""
