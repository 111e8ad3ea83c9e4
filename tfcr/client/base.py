"""What every client shares: `predict(queries)` and one-query `recommend`."""

from typing import List, Sequence

from tfcr.client.query import Query, Results


class Client:
  """What both back ends share: `recommend` is one-query `predict`."""

  def predict(self, queries: Sequence[Query]) -> List[Results]:
    raise NotImplementedError

  def recommend(self, user_id: str, condition: str = "", k: int = 10,
                filter: str = "none", exclude: Sequence[str] = ()) -> Results:  # pylint: disable=redefined-builtin
    """The top k items for one user and condition ("" = none); see `Query`."""
    return self.predict([Query(str(user_id), condition, k, filter, tuple(exclude))])[0]
