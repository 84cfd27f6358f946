"""The app's routers: the JSON API (``api_*``, ``launch``) and the dashboard pages."""
