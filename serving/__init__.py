"""The web face: the FastAPI app, its routes, wire models, auth dependencies, rate limits and metrics;
`runtime` is where the implementations behind it are chosen."""
