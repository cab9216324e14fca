"""A SavedModel of endpoints (functions with input signatures), each graph traced once.

`keras.export.ExportArchive` traces every endpoint to find the variables it reads, then TensorFlow's save
traces it again (a function's cache key records whether it is traced inside a save), so every graph of an
export was built twice. Here each endpoint is traced once and saved as that concrete function, with the
variables its trace read; the caller names the layers holding lookup tables, which a trace does not list
(docs/PERFORMANCE.md, "A smaller export, written faster": 90 -> 51 traces for a tiny export).
"""

import tensorflow as tf


class SavedModelArchive:
    """Endpoints saved as a SavedModel's signatures (and as its functions of the same names).

    Args:
        layers: Keras layers whose lookup tables the endpoints read (a `TextVectorization`'s vocabulary);
            the variables an endpoint reads are found in its trace.

    Example:
    >>> import tempfile
    >>> scale = tf.Variable(2.0)
    >>> archive = SavedModelArchive()  # an export's: SavedModelArchive(layers=encoder.layers)
    >>> archive.add_endpoint("serving_default", lambda x: {"y": x * scale}, [tf.TensorSpec([None], tf.float32, name="x")])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     archive.write_out(folder)
    ...     tf.saved_model.load(folder).signatures["serving_default"](x=tf.constant([1.0, 3.0]))["y"].numpy().tolist()
    [2.0, 6.0]
    """

    def __init__(self, layers=()):
        self._root = tf.__internal__.tracking.AutoTrackable()
        self._root.layers = list(layers)  # tracked, so that the save stores their tables
        self._endpoints = {}

    def add_endpoint(self, name, fn, input_signature):
        """`fn` (tensors in, a dict of tensors out) as the signature and function `name`; traced when written."""
        if name in self._endpoints:
            raise ValueError(f"endpoint {name!r} is added already")
        # No AutoGraph: an endpoint's Python runs once as written (as in Keras' ExportArchive); functions it calls
        # that need AutoGraph are tf.functions of their own.
        self._endpoints[name] = tf.function(fn, input_signature=input_signature, autograph=False)

    def write_out(self, folder):
        """The SavedModel into `folder` (created; it must not hold one already)."""
        if not self._endpoints:
            raise ValueError("no endpoints to write: add_endpoint first")
        # === One trace per endpoint, here ===
        # Saved as these concrete functions, which the save does not trace again (it would a tf.function)
        traced = {name: endpoint.get_concrete_function() for name, endpoint in self._endpoints.items()}
        # === What they read, tracked ===
        # The TensorFlow variables themselves: LiteRT's converter does not freeze Keras' wrappers of them (its while
        # loops then fail to run), and tracking the Keras model as well wrote every weight twice (keras-team/keras#23553)
        variables = {id(variable): variable for function in traced.values() for variable in function.variables}
        self._root.variables = list(variables.values())
        for name, function in traced.items():
            setattr(self._root, name, function)
        tf.saved_model.save(self._root, str(folder), signatures=traced)
