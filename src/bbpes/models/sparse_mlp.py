"""The NNE network (section 3.1): inputs -> sparse random graph -> ReLU hidden layer ->
fully connected softmax output, no biases; its weights are one flat vector of links.

Links are numbered first-layer edges first (hidden unit by hidden unit, inputs in
increasing order), then the `hidden x classes` output links (row-major). `m` counts
every existing link, as in the paper's `W` (m x n).

Evaluating a whole population on a whole training set is the cost of NNE
(`N x S` networks per generation). `population_logits` does it without materialising
any dense weight matrix: each hidden unit's in-edges are padded to a common degree `K`,
the pixels they read are gathered once per image block, and the first layer becomes
one batched matrix product over hidden units, `(K x images)^T (K x genotypes)`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array


class SparseMLP(eqx.Module):
    """The architecture (no weights): which input feeds which hidden unit.

    **Fields:** `sources (H, K)` int32, the input index of each in-edge slot of each
    hidden unit; `link_of_slot (H, K)` int32, the link index of each slot (`n_links`
    for padding, a weight that is always zero); sizes `n_inputs`, `n_hidden`,
    `n_classes`, `n_first` (edges in the first layer).
    """

    sources: Array
    link_of_slot: Array
    n_inputs: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_classes: int = eqx.field(static=True)
    n_first: int = eqx.field(static=True)

    @property
    def n_links(self) -> int:
        return self.n_first + self.n_hidden * self.n_classes

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """`(hidden, input)` index of every first-layer link, in link order."""
        valid = np.asarray(self.link_of_slot) < self.n_first
        hidden = np.nonzero(valid)[0]
        return hidden, np.asarray(self.sources)[valid]

    def split(self, weights: Array) -> tuple[Array, Array]:
        """Dense `(W1 (H, n_inputs), W2 (H, C))` from link weights `(m,)`."""
        hidden, inputs = self.edges()
        w1 = jnp.zeros((self.n_hidden, self.n_inputs), weights.dtype)
        w1 = w1.at[hidden, inputs].set(weights[: self.n_first])
        w2 = weights[self.n_first :].reshape(self.n_hidden, self.n_classes)
        return w1, w2

    def join(self, w1: Array, w2: Array) -> Array:
        """Link weights `(m,)` from dense `W1 (H, n_inputs)` (read on the edges only)
        and `W2 (H, C)`; the inverse of `split`."""
        hidden, inputs = self.edges()
        return jnp.concatenate([w1[hidden, inputs], w2.reshape(-1)])

    def mask(self) -> Array:
        """`(H, n_inputs)` 1.0 where an edge exists."""
        hidden, inputs = self.edges()
        return jnp.zeros((self.n_hidden, self.n_inputs)).at[hidden, inputs].set(1.0)

    def hidden(self, weights: Array, x: Array) -> Array:
        """ReLU hidden activity `(B, H)` of one network on inputs `x (B, n_inputs)`."""
        w1, _ = self.split(weights)
        return jax.nn.relu(x @ w1.T)

    def logits(self, weights: Array, x: Array) -> Array:
        """Output logits `(B, C)` of one network (weights `(m,)`) on `x (B, n_inputs)`."""
        _, w2 = self.split(weights)
        return self.hidden(weights, x) @ w2


def random_sparse_mlp(
    rng: np.random.Generator, n_inputs: int, n_hidden: int, n_classes: int, edge_prob: float
) -> SparseMLP:
    """Each input-hidden edge exists independently with probability `edge_prob`."""
    adjacency = rng.random((n_hidden, n_inputs)) < edge_prob
    return sparse_mlp_from_adjacency(adjacency, n_classes)


def sparse_mlp_from_adjacency(adjacency: np.ndarray, n_classes: int) -> SparseMLP:
    """The network whose first-layer edges are the True entries of `adjacency (H, n_in)`."""
    n_hidden, n_inputs = adjacency.shape
    degree = adjacency.sum(1)
    width = max(int(degree.max()), 1)
    sources = np.zeros((n_hidden, width), np.int32)
    link_of_slot = np.full((n_hidden, width), int(degree.sum()), np.int32)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    for h in range(n_hidden):
        inputs = np.flatnonzero(adjacency[h])
        sources[h, : len(inputs)] = inputs
        link_of_slot[h, : len(inputs)] = start[h] + np.arange(len(inputs))
    return SparseMLP(
        jnp.asarray(sources),
        jnp.asarray(link_of_slot),
        n_inputs,
        n_hidden,
        n_classes,
        int(degree.sum()),
    )


class PopulationInputs(eqx.Module):
    """A training set laid out for `population_logits`.

    Only the links the training logits depend on are kept ("active" links: every
    output link, and each first-layer edge whose input pixel is nonzero in some
    training image); `links` lists them, output links last. Hidden units are sorted by
    active in-degree and cut into blocks of `hb` units (padded with dummy units that
    have no links); the blocks are grouped in buckets, each padded to its own largest
    degree `K_g`, so padding wastes little work. Pixels are gathered once, here.

    **Fields** (tuples, one entry per bucket `g` of `n_g` hidden blocks):
    `pixels[g] (B, n_g, hb, K_g, b)`, for each block of `b` images the input on each
    in-edge slot; `slots[g] (n_g, hb, K_g)`, the position in `links` of each slot
    (`len(links)` for padding); `units[g] (n_g, hb)`, the hidden unit of each row
    (`n_hidden` for a dummy). `labels (B, b)` int32; `links (m_active,)` int32.
    """

    pixels: tuple[Array, ...]
    slots: tuple[Array, ...]
    units: tuple[Array, ...]
    labels: Array
    links: Array
    n_hidden: int = eqx.field(static=True)
    n_classes: int = eqx.field(static=True)

    @property
    def n_images(self) -> int:
        return self.labels.size


def population_inputs(
    net: SparseMLP,
    x: np.ndarray,
    y: np.ndarray,
    *,
    image_block: int,
    hidden_block: int = 10,
    buckets: int = 8,
) -> PopulationInputs:
    """Lay out `x (S, n_inputs)`, `y (S,)` for `population_logits`: images in blocks of
    `image_block` (which must divide S), hidden units in blocks of `hidden_block`
    grouped in up to `buckets` buckets of similar degree."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) % image_block:
        raise ValueError(f"image_block {image_block} must divide the number of images {len(x)}")
    sources = np.asarray(net.sources)
    slot_links = np.asarray(net.link_of_slot)
    keep = (slot_links < net.n_first) & np.any(x != 0, axis=0)[sources]
    first_links = np.sort(slot_links[keep])
    links = np.concatenate([first_links, np.arange(net.n_first, net.n_links)])
    position = np.full(net.n_links + 1, len(links), np.int64)
    position[links] = np.arange(len(links))
    degree = keep.sum(1)
    n_blocks = -(-net.n_hidden // hidden_block)
    order = np.full(n_blocks * hidden_block, net.n_hidden)  # dummies (degree 0) first
    order[n_blocks * hidden_block - net.n_hidden :] = np.argsort(degree, kind="stable")
    order = order.reshape(n_blocks, hidden_block)
    images = x.reshape(-1, image_block, x.shape[1])  # (B, b, n_inputs)
    padded_degree = np.append(degree, 0)
    pixels, slots, units = [], [], []
    for group in np.array_split(order, min(buckets, n_blocks)):
        width = max(int(padded_degree[group].max()), 1)
        group_sources = np.zeros((*group.shape, width), np.int64)
        group_slots = np.full((*group.shape, width), len(links), np.int64)
        for index, h in np.ndenumerate(group):
            if h < net.n_hidden:
                kept = np.flatnonzero(keep[h])
                group_sources[index][: len(kept)] = sources[h, kept]
                group_slots[index][: len(kept)] = position[slot_links[h, kept]]
        gathered = images[:, :, group_sources]  # (B, b, n_g, hb, K_g)
        gathered = gathered * (group_slots < len(links))
        pixels.append(jnp.asarray(np.moveaxis(gathered, 1, -1)))
        slots.append(jnp.asarray(group_slots, jnp.int32))
        units.append(jnp.asarray(group, jnp.int32))
    return PopulationInputs(
        pixels=tuple(pixels),
        slots=tuple(slots),
        units=tuple(units),
        labels=jnp.asarray(y.reshape(-1, image_block).astype(np.int32)),
        links=jnp.asarray(links, jnp.int32),
        n_hidden=net.n_hidden,
        n_classes=net.n_classes,
    )


def population_weights(
    inputs: PopulationInputs, weights: Array
) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
    """Each bucket's first-layer weights `(n_g, hb, K_g, c)` and output weights
    `(n_g, hb, C, c)`, from the active link weights `(m_active, c)` of `c` networks."""
    c = weights.shape[1]
    padded = jnp.concatenate([weights, jnp.zeros((1, c), weights.dtype)])
    w2 = weights[-inputs.n_hidden * inputs.n_classes :].reshape(
        inputs.n_hidden, inputs.n_classes, c
    )
    w2 = jnp.concatenate([w2, jnp.zeros((1, inputs.n_classes, c), weights.dtype)])
    return (
        tuple(padded[slots] for slots in inputs.slots),
        tuple(w2[units] for units in inputs.units),
    )


def population_logits(
    first: tuple[Array, ...], output: tuple[Array, ...], pixels: tuple[Array, ...]
) -> Array:
    """Logits of `c` networks on one block of `b` images.

    **Arguments:** `first`, `output`: the networks' weights from `population_weights`;
    `pixels`: one image block of each bucket of `PopulationInputs.pixels`,
    `(n_g, hb, K_g, b)`.

    **Returns:** `(b, c, C)`, in the weights' dtype promoted to at least float32.

    The loop runs over blocks of `hb` hidden units so that each block's activity
    `(hb, b, c)` stays in cache while it is multiplied into the logits: the same
    arithmetic on the whole hidden layer at once is several times slower here, as it
    streams `(H, b, c)` through memory twice.
    """
    b, c, n_classes = pixels[0].shape[-1], first[0].shape[-1], output[0].shape[-2]
    # sums in at least float32 (bfloat16 weights and pixels: bfloat16 products only)
    total = jnp.promote_types(first[0].dtype, jnp.float32)

    def hidden_block(logits, block):
        block_pixels, w1, w2 = block
        hidden = jnp.einsum("hks,hkc->hsc", block_pixels, w1, preferred_element_type=total)
        hidden = jax.nn.relu(hidden)
        return logits + jnp.einsum("hsc,hoc->soc", hidden, w2, preferred_element_type=total), None

    logits = jnp.zeros((b, n_classes, c), total)
    for bucket in zip(pixels, first, output):
        logits, _ = jax.lax.scan(hidden_block, logits, bucket)
    return jnp.transpose(logits, (0, 2, 1))


def cross_entropy(logits: Array, labels: Array) -> Array:
    """`-log softmax(logits)[label]` over the last axis; `labels` has the shape of
    `logits.shape[:-1]`."""
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return jax.nn.logsumexp(logits, axis=-1) - picked
