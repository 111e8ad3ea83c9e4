"""The demo (`make demo`, `tour`) and the notebooks' helpers (`notebook`): apart from the
library, nothing in tfcr imports them."""
