"""Running the model code: settings and recipes, data, training, the run directory, export and loading."""
