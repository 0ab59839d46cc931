"""The read-only web dashboard over a dataset (`human3r dashboard --root ROOT`). Imports `storage` only.

Modules: `app` (the FastAPI app, security headers, static assets, `serve`), `pages` (the routes: overview, videos,
video, frame data and image, SQL, CSV), `queries` (the bounded read queries), `snapshot` (the refreshing catalog and
the time limit), `usersql` (one read-only statement, row limit, CSV), `figures` (Plotly figures as dicts),
`geometry` (projection, camera centres, speeds), `media` (source frames decoded on demand, through `storage.media`);
`templates/` (Jinja2) and `static/` (CSS, JS; plotly.js is served from the plotly package).
"""
