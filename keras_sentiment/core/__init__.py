"""The model code: pure Keras and TensorFlow layers, models, scorers and explanations; imports nothing above it."""
