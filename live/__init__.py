"""Realtime: what reaches a `deliveryUpdated` subscriber, from the broadcast's bell to
the websocket.

feed.py reads the delivery event log once per process when the broadcast rings;
updates.py is what it hands subscriptions; positions.py the log positions and cursors;
shared_results.py executes and serialises an update once for all its subscribers;
transport.py serves the two websocket protocols. The resolver (resolvers/subscriptions.py)
finds the feed in the Services object. Imports nothing of web/ or resolvers/.
"""
