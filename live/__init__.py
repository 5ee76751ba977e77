"""Realtime: the live feed, updates, positions, shared results, websocket transport."""
