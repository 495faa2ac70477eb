"""The customer portal server (``linky-stream portal``, docs/portal.md): per-PDL access with
supplier-issued JWTs, browser sessions, live updates over Server-Sent Events from one shared
Redis subscription, and the worker's HTTP API behind authentication."""
