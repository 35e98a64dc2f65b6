"""The live dashboard, `pbt-dashboard`: a Starlette app (`app.create_app`) over the results API that
lists studies and shows one study's progress as it runs. Needs the `dashboard` extra
(`pip install 'pbt-service[dashboard]'`); importing this package alone imports nothing of it."""
