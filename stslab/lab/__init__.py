"""A lab of many benches: each bench a labgrid place, campaigns queued to free places.

The bench computer runs a labgrid exporter that publishes the bench file's instruments
(serial devices through ser2net, SCPI instruments and the camera as network resources) and
the bench file itself; a labgrid coordinator knows every place and who holds it; a campaign
acquires a place (or reserves any free one matching tags), builds its bench from the place's
resources and releases it at the end. labgrid does the locking and the queue.
"""
