"""Export: the condition filter, the servable (query tower + index + filter in one
tf.Module), the exporter that writes it as a TF Serving version, and export-or-reuse."""
