"""The real-time scoring service (`fedmarket serve`): FastAPI on uvicorn, at the retailer.

``app`` builds the app, ``schema`` is what callers send, ``scorer`` turns it into scores with
the batch path's validator and feature code, ``decision`` fixes the selection threshold,
``guard`` checks the token and body size and hides internal errors, ``runner`` starts it.
Needs the ``serve`` extra: ``pip install 'fedmarket[serve]'``.
"""
