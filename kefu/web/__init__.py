"""The FastAPI edge: the app factory, dependencies, routes, error mapping."""
