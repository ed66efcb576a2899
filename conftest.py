# The matrix plugin: options (--models, --paths, ...), parametrization, recording, summary.
pytest_plugins = ["compat_tests.plugin"]
