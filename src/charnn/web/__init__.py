"""`charnn serve`: a local web app to write with a model, look inside it and watch it train.

`app.create_app(paths)` builds the FastAPI app over the served run folders (`runs`); the pages
are plain HTML, CSS and JavaScript under static/ (no network at run time), and the Inside page
draws with the renderer `charnn inspect` embeds (charnn/apps/static/).
"""
