"""`ideaforge serve`: the HTTP service (OpenAI-compatible images API, jobs with an event stream, Ray Serve).

`config` (bind, key, limits), `store` (the jobs in SQLite), `engine` (worker threads around a `Batcher`),
`api` (the FastAPI app), `ray_app` (the same app as a Ray Serve deployment). FastAPI and uvicorn load only when a
server is built, so `ideaforge --help` stays instant.
"""
