"""MovieLens, one data source among others: RecBole's MovieLens-100k files (fetched from
PyPI) as a TFDS builder, TFDS's own `movielens/*-ratings`, and the table assembly both
share."""
