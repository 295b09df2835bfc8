"""The probes as scikit-learn estimators: a linear probe (C chosen on validation), DINO's kNN
read-out, and a transformer that turns images or tokens into one layer's features, so that iGPT
features drop into a scikit-learn `Pipeline`.

Each follows scikit-learn's conventions: parameters in the constructor, learned attributes with a
trailing underscore, `get_params` / `set_params` / `clone` work. Validation data is passed to
`fit` as scikit-learn's own estimators take an evaluation set (HistGradientBoosting's
`fit(X, y, *, X_val, y_val)`); in a Pipeline, `Pipeline(..., transform_input=["X_val"])` runs it
through the feature step first (metadata routing)."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..checkpoint import Checkpoint, load_checkpoint
from ..features import extract_features, parse_layers

# inverse regularisation strengths, weakest last; wide on purpose: a chosen C at either end of
# the grid (flagged `C_at_edge` in the table) means the grid should be widened. On whitened
# features (below) the mnist-canvas probes chose C between 0.01 and 0.1, far inside this grid.
DEFAULT_CS = tuple(float(c) for c in np.logspace(-5, 5, 11))
# lbfgs iterations per C: whitened, every fit measured converged in < 200 (`converged` in the table)
DEFAULT_MAX_ITER = 5000
# whitening keeps the principal directions whose variance is above this share of the largest:
# below it a direction's standard deviation is < 1e-4 of the largest, float32 rounding level
# (layer-normed, mean-pooled features have one exactly null direction and many near it)
WHITEN_RCOND = 1e-8


def as_checkpoint(checkpoint) -> Checkpoint:
    """A Checkpoint from a Checkpoint, a folder or a model name."""
    return checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)


def stderr(acc: float, n: int) -> float:
    """Binomial standard error of an accuracy on n images: differences below ~2 of these are noise."""
    return float(np.sqrt(acc * (1 - acc) / n))


class Whitener:
    """PCA whitening of (already standardised) features: centre, rotate onto the principal
    directions whose variance is above `rcond` times the largest, divide each by its standard
    deviation. The result has identity covariance on the training features."""

    def __init__(self, rcond: float = WHITEN_RCOND):
        self.rcond = rcond

    def fit(self, X) -> "Whitener":
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(0)
        _, sv, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        var = sv ** 2 / max(len(X) - 1, 1)
        keep = var > self.rcond * var[0] if len(var) and var[0] > 0 else np.zeros(len(var), bool)
        self.n_components_ = int(keep.sum())
        self.components_ = vt[keep]
        self.scale_ = np.sqrt(var[keep])
        return self

    def transform(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean_) @ self.components_.T / self.scale_


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Standardised, then whitened features -> multinomial logistic regression (scikit-learn,
    lbfgs), with C chosen on a validation split (`fit(X, y, X_val=..., y_val=...)`): the C whose
    model scores best there (ties: the smaller C, the simpler model). Each C is fitted from
    scratch, so the chosen model is exactly scikit-learn's LogisticRegression(C=C_) on the
    transformed training features. A single C needs no validation split.

    Why whiten: standardised layer-normed features are nearly collinear (condition
    number ~1e14 on mnist-canvas), so lbfgs crawled: with 1000 iterations most fits at C >= 10 had
    not converged and their validation accuracy was ~9 points below the converged value, which
    took ~5000 iterations. Whitened (`Whitener`, dropping the null directions), every C converged
    in < 200 iterations, 10x faster, at the same or better validation accuracy. An unregularised
    logistic regression is unchanged by any invertible linear map of the features, so whitening
    changes only what the L2 penalty prefers. whiten=False gives the plain standardised probe;
    whiten="auto" fits both and keeps the better on validation (ties: whitened), which is what the
    pixel baselines need: on mnist-canvas raw pixels (1,024 dimensions, most pixels nearly always
    blank) the standardised probe read 27.4% and the whitened one 20.8%.

    After fit: C_, Cs_ (the grid, sorted), whitened_ (the chosen preprocessing), val_scores_ (one
    per C in Cs_, of the chosen preprocessing), scaler_, whitener_ (None when not whitened),
    classifier_, classes_, n_features_in_, converged_, n_iter_.

    Example::

        probe = LinearProbe().fit(X_train, y_train, X_val=X_val, y_val=y_val)   # C chosen on validation
        probe.score(X_test, y_test)
    """

    def __init__(self, Cs=DEFAULT_CS, max_iter: int = DEFAULT_MAX_ITER, tol: float = 1e-4, whiten=True,
                 rcond: float = WHITEN_RCOND):
        self.Cs = Cs
        self.max_iter = max_iter
        self.tol = tol
        self.whiten = whiten
        self.rcond = rcond

    def preprocess(self, X) -> np.ndarray:
        """The features the classifier reads: standardised, then whitened. (Not `transform`: that
        would make scikit-learn take the probe for a transformer.)"""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        Xs = self.scaler_.transform(X)
        return self.whitener_.transform(Xs) if self.whitener_ is not None else Xs

    def fit(self, X, y, *, X_val=None, y_val=None) -> "LinearProbe":
        if self.whiten == "auto":
            if X_val is None or y_val is None:
                raise ValueError('whiten="auto" chooses on validation: pass X_val and y_val')
            fits = [LinearProbe(**{**self.get_params(), "whiten": w}).fit(X, y, X_val=X_val, y_val=y_val)
                    for w in (True, False)]
            best = max(fits, key=lambda p: max(p.val_scores_))  # first of equals: whitened
            self.__dict__.update({k: v for k, v in best.__dict__.items() if k.endswith("_")})
            return self
        if self.whiten not in (True, False):
            raise ValueError(f'whiten must be True, False or "auto", got {self.whiten!r}')
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        Cs = sorted(float(c) for c in np.atleast_1d(self.Cs))
        if len(Cs) > 1 and (X_val is None or y_val is None):
            raise ValueError("choosing C needs a validation split: pass X_val and y_val, or a single C")
        # One BLAS thread: lbfgs here multiplies small matrices, and with torch's OpenMP pool
        # also loaded, OpenBLAS's spinning threads made every fit ~8x slower on 2 cores
        # (mnist, 8 layers: 174 s with 2 BLAS threads, 21 s with 1; benchmarks/probe.py).
        with threadpool_limits(1, user_api="blas"):
            self.scaler_ = StandardScaler().fit(X)
            self.whitener_ = Whitener(self.rcond).fit(self.scaler_.transform(X)) if self.whiten else None
            Xs = self.preprocess(X)
            Xv = self.preprocess(X_val) if X_val is not None else None
        self.Cs_, self.val_scores_, best = Cs, [], None
        for C in Cs:
            clf = LogisticRegression(C=C, max_iter=self.max_iter, tol=self.tol)
            with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
                warnings.simplefilter("ignore", ConvergenceWarning)  # recorded in converged_ instead
                clf.fit(Xs, y)
            score = _accuracy(clf.predict(Xv), y_val) if Xv is not None else np.nan
            self.val_scores_.append(score)
            if best is None or score > best[0]:  # strictly better: ties keep the smaller C
                best = (score, C, clf)
        _, self.C_, self.classifier_ = best
        self.classes_ = self.classifier_.classes_
        self.whitened_ = bool(self.whiten)
        self.n_iter_ = int(np.max(self.classifier_.n_iter_))
        self.converged_ = bool(self.n_iter_ < self.max_iter)
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classifier_.predict(self.preprocess(X))

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classifier_.predict_proba(self.preprocess(X))


def _accuracy(pred, y) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(y)))


class KNNProbe(ClassifierMixin, BaseEstimator):
    """The weighted k-nearest-neighbour read-out of DINO's evaluation (Caron et al. 2021,
    eval_knn.py): features L2-normalised, cosine similarity to every training feature, the k most
    similar vote for their class with weight exp(similarity / temperature), the class with the
    largest summed weight wins (ties: the smallest class label). No parameter is fitted, so nothing
    is chosen on validation: fit only stores the normalised training features.

    After fit: classes_ (sorted labels), X_ (normalised training features), y_ (their class
    indices), n_features_in_.

    Example::

        KNNProbe(k=20).fit(X_train, y_train).score(X_test, y_test)
    """

    def __init__(self, k: int = 20, temperature: float = 0.07, batch_size: int = 256):
        self.k = k
        self.temperature = temperature
        self.batch_size = batch_size

    @staticmethod
    def _normalise(X) -> np.ndarray:
        # float64: in float32 the similarity sums depended on the BLAS thread count (a 1- and a
        # 2-thread run of one mnist-canvas layer differed by 3 of 500 test predictions)
        X = np.asarray(X, dtype=np.float64)
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)

    def fit(self, X, y) -> "KNNProbe":
        if self.k < 1 or self.temperature <= 0:
            raise ValueError(f"k must be >= 1 and the temperature > 0, got k={self.k}, temperature={self.temperature}")
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.X_ = self._normalise(X)
        self.classes_, self.y_ = np.unique(y, return_inverse=True)
        return self

    def votes(self, X) -> np.ndarray:
        """N×classes summed vote weights (the unnormalised class scores)."""
        from threadpoolctl import threadpool_limits

        check_is_fitted(self)
        Q = self._normalise(validate_data(self, X, reset=False))
        k = min(self.k, len(self.X_))
        out = np.zeros((len(Q), len(self.classes_)))
        # One BLAS thread, as LinearProbe.fit: measured, the products are small (500 queries × 4,000
        # training features × 64: 0.05 s with one thread or two), and OpenBLAS's spinning
        # threads beside torch's pool only add contention on this machine's 2 cores.
        with threadpool_limits(1, user_api="blas"):
            for i in range(0, len(Q), self.batch_size):
                sim = Q[i:i + self.batch_size] @ self.X_.T
                top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
                weight = np.exp(np.take_along_axis(sim, top, axis=1) / self.temperature)
                block = out[i:i + self.batch_size]
                for c in range(len(self.classes_)):
                    block[:, c] = (weight * (self.y_[top] == c)).sum(1)
        return out

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.votes(X), axis=1)]


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Images (uint8 N×H×W×C at the model's size) or tokens (N×T) -> one layer's features of a
    checkpoint (path, name or Checkpoint), as `features.extract_features` computes them (the
    probes' features: `norm`, then `pool` over positions). Nothing is learned: fit loads the
    checkpoint and checks the layer.

        Pipeline([("features", FeatureExtractor("mnist", "blocks.3")), ("probe", LinearProbe(Cs=[0.1]))])

    After fit: checkpoint_ (the Checkpoint), layer_ (the layer's canonical name).

    Example::

        from sklearn.pipeline import make_pipeline
        pipe = make_pipeline(FeatureExtractor(ck, "blocks.3"), LinearProbe(Cs=[1.0]))
        pipe.fit(train.images, train.labels).score(test.images, test.labels)
    """

    def __init__(self, checkpoint, layer: str, norm: str = "layernorm", pool: str = "mean",
                 batch_size: int = 64, cache_dir=None):
        self.checkpoint = checkpoint
        self.layer = layer
        self.norm = norm
        self.pool = pool
        self.batch_size = batch_size
        self.cache_dir = cache_dir

    def fit(self, X=None, y=None) -> "FeatureExtractor":
        self.checkpoint_ = as_checkpoint(self.checkpoint)
        self.layer_ = parse_layers(self.checkpoint_.model, [self.layer])[0]
        return self

    def tokens(self, X) -> torch.Tensor:
        """X as the model's tokens: N×T tokens as they are, images through the model's palette."""
        check_is_fitted(self)
        if isinstance(X, torch.Tensor) or np.asarray(X).ndim == 2:
            return torch.as_tensor(np.asarray(X), dtype=torch.long)
        ck = self.checkpoint_
        return ck.palette.encode(ck.check_images(X))

    def transform(self, X) -> np.ndarray:
        return extract_features(self.checkpoint_.model, self.tokens(X), [self.layer_], norm=self.norm, pool=self.pool,
                                batch_size=self.batch_size, cache_dir=self.cache_dir)[self.layer_]

