"""GRU + NCF: a GRU reads the customer's category events, NCF scores every item against it.

Input ``X`` is ``[B, L, 3]`` float32 (``fedmarket.recommend.data``): per event the item index
(-1 = padding), the event type (-1 = padding) and the brand token (0 = none). Output is
``[B, V]``, one score per item of the vocabulary (known and new items alike).

- Items are described by content only: an item's embedding is the sum of its tokens' embeddings
  (the dotted prefixes of its category code, ``fedmarket.data.category_vocab``), so an item first
  seen after the cut-off has a representation from the prefixes it shares with known ones.
- An event is its item's embedding + its brand token's + its event type's.
- ``mode="gru-ncf"``: a GRU over the events, its last state projected to the customer state;
  NCF (He et al., 2017, NeuMF) scores (customer, item) with a GMF (element-wise product) and an
  MLP tower over their concatenation, joined by one linear layer.
- ``mode="gru"`` (GRU-only): the customer state dotted with the item embedding.
- ``mode="ncf"`` (NCF-only): no sequence; the customer is the mean of its event embeddings (a
  bag of categories), scored by the same NCF.

Every embedding lookup is ONE call of the token table on one index tensor (history, brands and
the candidate items repeated per customer), so under Opacus the table's per-sample gradient is
that customer's own rows (an embedding used on a shared buffer would have no batch dimension).
The DP form swaps the GRU for Opacus' DPGRU (``fedmarket.models.recurrent``; same state dict).
No BatchNorm (Opacus cannot privatise it).

Task ``next-products`` (within one retailer, ``fedmarket.recommend.products``): ``X`` is
``[B, L, 5]`` (item, type, brand, product, partition) and the candidates are the rows of a
``catalogue`` (each product's content tokens: category prefixes and brand). A product's
embedding is its content's plus, for a product known at the cut-off, its row of the
retailer-private table ``products`` (``PRIVATE_PREFIX``: FedAvg never sees it, zero-initialised
so a product starts at its content); a new product (first seen after the cut-off, or only in
test windows) and padding take no private row: the content-only cold path. An event adds its
product's private row to the category event of ``next-categories``. ``owner`` says whose
product each candidate is: a customer's scores for another partition's products are the
constant ``MASKED`` (the centralised reference holds every retailer's table in one model).
Without a catalogue the model is the shared part only (the server's global model).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fedmarket.checks import integer, number
from fedmarket.data.category_vocab import Vocabulary
from fedmarket.errors import ConfigError
from fedmarket.models.recurrent import RecurrentStack
from fedmarket.recommend.loss import MASKED

MODES: tuple[str, ...] = ("gru-ncf", "gru", "ncf")
N_EVENT_TYPES = 4
TASKS: tuple[str, ...] = ("next-categories", "next-products")
FEATURES = {"next-categories": 3, "next-products": 5}
PRIVATE_PREFIX = "products."  # the retailer-private product table's state-dict keys


class GruNcf(nn.Module):
    """See the module docstring; build with ``build_model("gru-ncf", 3, vocabulary=...)``."""

    def __init__(
        self,
        n_features: int,
        *,
        task: str = "next-categories",
        dp: bool | str = False,
        vocabulary: dict[str, Any] | None = None,
        catalogue: dict[str, Any] | None = None,
        mode: str = "gru-ncf",
        embedding_dim: int = 32,
        hidden_size: int = 64,
        mlp_size: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ConfigError(
                f"model gru-ncf predicts task {' or '.join(map(repr, TASKS))}, not {task!r}"
            )
        if n_features != FEATURES[task]:
            raise ConfigError(
                f"model gru-ncf reads {FEATURES[task]} values per event for task {task} "
                f"(item, type, brand{', product, partition' if FEATURES[task] == 5 else ''}), "
                f"got {n_features}"
            )
        if catalogue is not None and task != "next-products":
            raise ConfigError("a product catalogue is for task next-products only")
        if vocabulary is None:
            raise ConfigError(
                "model gru-ncf needs the prepared data's vocabulary: pass "
                "vocabulary=manifest['recommend'] (data prepared from events with category codes)"
            )
        if mode not in MODES:
            raise ConfigError(f"gru-ncf mode {mode!r} is unknown; use one of {', '.join(MODES)}")
        vocab = Vocabulary.from_manifest(vocabulary)
        d = integer("embedding_dim", embedding_dim, at_least=1)
        integer("hidden_size", hidden_size, at_least=1)
        integer("mlp_size", mlp_size, at_least=1)
        number("dropout", dropout, at_least=0.0, below=1.0)
        self.mode, self.n_items = mode, len(vocab.items)
        content = torch.from_numpy(vocab.content())
        # row n_items: padding (all tokens 0, the zero embedding). Not in the state dict: it is
        # the data's description of the items, rebuilt from the vocabulary, never averaged.
        self.register_buffer(
            "content", torch.cat([content, torch.zeros_like(content[:1])]), persistent=False
        )
        self.tokens = nn.Embedding(len(vocab.tokens), d, padding_idx=0)
        self.types = nn.Embedding(N_EVENT_TYPES + 1, d, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        if mode == "ncf":
            self.gru = None
            self.state = nn.Linear(d, d)
        else:
            self.gru = RecurrentStack("gru", d, hidden_size, 1, 0.0, dp=dp)
            self.state = nn.Linear(hidden_size, d)
        if mode != "gru":
            self.gmf = nn.Linear(d, d, bias=False)
            self.mlp = nn.Sequential(
                nn.Linear(2 * d, mlp_size), nn.ReLU(), nn.Linear(mlp_size, d), nn.ReLU()
            )
            self.out = nn.Linear(2 * d, 1)
        self.task, self.products = task, None
        if catalogue is not None:
            self._catalogue(catalogue, d)

    def _catalogue(self, catalogue: dict[str, Any], d: int) -> None:
        """The retailer's products: content tokens, private rows, owners (buffers, rebuilt
        from the data, never averaged) and the private table (``PRIVATE_PREFIX``)."""
        try:
            content = torch.as_tensor(catalogue["content"], dtype=torch.long)
            private = torch.as_tensor(catalogue["private"], dtype=torch.long)
            owner = torch.as_tensor(catalogue["owner"], dtype=torch.long)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"gru-ncf catalogue is incomplete ({exc})") from None
        n = len(content)
        if content.dim() != 2 or private.shape != (n,) or owner.shape != (n,):
            raise ConfigError("gru-ncf catalogue: content [P, D], private [P], owner [P] needed")
        n_private = int(private.max().item()) + 1 if n else 0
        self.n_items = n
        self.register_buffer("cand_content", content, persistent=False)
        # row n_private: no private row (padding, no product, a new product)
        self.register_buffer(
            "cand_private", torch.where(private < 0, n_private, private), persistent=False
        )
        self.register_buffer("owner", owner, persistent=False)
        self.n_private = n_private
        self.products = nn.Embedding(n_private + 1, d)
        nn.init.zeros_(self.products.weight)

    def forward(self, x: Tensor) -> Tensor:
        if self.task == "next-products":
            return self._forward_products(x)
        batch, length, _ = x.shape
        item = x[..., 0].long()
        item = torch.where(item < 0, self.n_items, item)
        etype = x[..., 1].long() + 1  # padding -1 -> 0
        brand = x[..., 2].long()
        hist_tokens = self.content[item]  # [B, L, D]
        cand_tokens = self.content[: self.n_items].expand(batch, -1, -1)  # [B, V, D]
        depth = hist_tokens.shape[-1]
        index = torch.cat([hist_tokens.flatten(1), brand, cand_tokens.flatten(1)], dim=1)
        emb = self.tokens(index)  # one lookup, [B, L*D + L + V*D, d]
        n_hist = length * depth
        events = emb[:, :n_hist].reshape(batch, length, depth, -1).sum(2)
        events = events + emb[:, n_hist : n_hist + length] + self.types(etype)
        items = emb[:, n_hist + length :].reshape(batch, self.n_items, depth, -1).sum(2)
        state = self.drop(self._customer(events, etype > 0))
        if self.mode == "gru":
            return (state[:, None, :] * items).sum(-1)
        gmf = self.gmf(state)[:, None, :] * items
        pair = torch.cat([state[:, None, :].expand_as(items), items], dim=-1)
        return self.out(torch.cat([gmf, self.mlp(pair)], dim=-1)).squeeze(-1)

    def _customer(self, events: Tensor, present: Tensor) -> Tensor:
        if self.gru is None:  # NCF-only: the bag of events
            weights = present.float()[..., None]
            return self.state((events * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        return self.state(self.gru(events)[:, -1])

    def _forward_products(self, x: Tensor) -> Tensor:
        """Task next-products: see the module docstring (one lookup per table)."""
        if self.products is None:
            raise ConfigError(
                "gru-ncf for next-products needs the retailer's catalogue: the shared model "
                "alone ranks no retailer's products (build it with catalogue=...)"
            )
        batch, length, _ = x.shape
        item = x[..., 0].long()
        item = torch.where(item < 0, len(self.content) - 1, item)
        etype = x[..., 1].long() + 1
        brand = x[..., 2].long()
        product = x[..., 3].long()
        hist_private = torch.where(
            product < 0, self.n_private, self.cand_private[product.clamp(min=0)]
        )
        hist_tokens = self.content[item]  # [B, L, D]
        cand = self.cand_content.expand(batch, -1, -1)  # [B, P, D + 1]
        depth, width = hist_tokens.shape[-1], cand.shape[-1]
        index = torch.cat([hist_tokens.flatten(1), brand, cand.flatten(1)], dim=1)
        emb = self.tokens(index)
        private_index = torch.cat([hist_private, self.cand_private.expand(batch, -1)], dim=1)
        has = (private_index < self.n_private).float()[..., None]
        private = self.products(private_index) * has  # zero where there is no private row
        n_hist = length * depth
        events = emb[:, :n_hist].reshape(batch, length, depth, -1).sum(2)
        events = events + emb[:, n_hist : n_hist + length] + self.types(etype)
        events = events + private[:, :length]
        items = emb[:, n_hist + length :].reshape(batch, self.n_items, width, -1).sum(2)
        items = items + private[:, length:]
        state = self.drop(self._customer(events, etype > 0))
        if self.mode == "gru":
            score = (state[:, None, :] * items).sum(-1)
        else:
            gmf = self.gmf(state)[:, None, :] * items
            pair = torch.cat([state[:, None, :].expand_as(items), items], dim=-1)
            score = self.out(torch.cat([gmf, self.mlp(pair)], dim=-1)).squeeze(-1)
        mine = self.owner[None, :] == x[:, :1, 4].long()
        return torch.where(mine, score, torch.full_like(score, MASKED))
