"""Commands that join two stages (curate's check needs train's embeddings): the CLI layer, the
one place where sibling stages meet. `shotlab/cli.py` adds them to their groups."""
