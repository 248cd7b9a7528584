import warnings

# conf/hydra/launcher/X.yaml has the name of the launcher plugin's own schema, so Hydra checks
# it against that schema (what we want) and warns, in every job, that this matching is
# deprecated; the files restate every setting, so they keep working once Hydra drops it.
# Here, not in hydra_app: joblib and submitit job processes import this package (they
# unpickle the sweep callbacks) but not hydra_app.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema")
