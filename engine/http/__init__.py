"""The HTTP ingress (aiohttp): enqueue, inspect and operate queues over JSON.

Import `engine.http.server` for `start_http` and `build_app`; nothing else in `engine` imports
this package eagerly, so a worker that serves no HTTP never loads aiohttp's server side.
"""

from __future__ import annotations
