"""Publishing to a Hub and loading from it: the embedded Hub server and its store, target selection,
publishing one generation per tagged commit, loading a published generation, syncing to another Hub.

Importing this package imports nothing heavy; each module imports the libraries it needs.
"""
