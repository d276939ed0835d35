"""Subsets (cnnviz.data.subsets): stratified limits and the class filter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz import data
from cnnviz.data import subsets

pytestmark = pytest.mark.usefixtures("isolated")


# ---------------------------------------------------------------------------------------------
# Stratified limits.
# ---------------------------------------------------------------------------------------------


def test_stratified_indices_balance_classes_and_fill_from_the_big_ones():
    labels = np.array([0] * 50 + [1] * 50 + [2] * 3)
    indices = subsets.stratified_indices(labels, 30, seed=0)
    # Class 2 gives all 3 it has; the other 27 places are split 14/13 between classes 0 and 1.
    counts = np.bincount(labels[indices], minlength=3)
    assert counts[2] == 3 and sorted(counts[:2]) == [13, 14] and counts.sum() == 30
    assert len(set(indices.tolist())) == 30


def test_stratified_indices_are_deterministic_and_shuffled():
    labels = np.repeat(np.arange(10), 100)
    first = subsets.stratified_indices(labels, 200, seed=4)
    np.testing.assert_array_equal(first, subsets.stratified_indices(labels, 200, seed=4))
    assert not np.array_equal(first, subsets.stratified_indices(labels, 200, seed=5))
    np.testing.assert_array_equal(np.bincount(labels[first]), [20] * 10)
    assert not np.all(np.diff(labels[first]) >= 0)  # Not sorted by class.
    everything = subsets.stratified_indices(labels, 5000, seed=0)
    np.testing.assert_array_equal(np.sort(everything), np.arange(1000))


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 30), min_size=1, max_size=8), n=st.integers(1, 250),
       seed=st.integers(0, 2**16))
def test_stratified_indices_are_as_equal_as_the_data_allows(counts, n, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    if len(labels) == 0:
        return
    indices = subsets.stratified_indices(labels, n, seed)
    assert len(indices) == min(n, len(labels)) == len(np.unique(indices))
    taken = np.bincount(labels[indices], minlength=len(counts))
    available = np.array(counts)
    # A class that could give more has at least as many as any other class, minus one.
    unfilled = taken < available
    if unfilled.any():
        assert taken[unfilled].min() >= taken.max() - 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_limits_must_be_positive_whole_numbers(bad):
    with pytest.raises(ValueError, match="limit_train"):
        data.load("fashion_mnist", limit_train=bad)


def test_load_limits_give_balanced_subsets_of_the_full_data():
    full = data.load("fashion_mnist")
    subset = data.load("fashion_mnist", limit_train=500, limit_test=50, seed=3)
    assert subset.source == full.source and subset.note == full.note
    np.testing.assert_array_equal(np.bincount(subset.y_train), [50] * 10)
    np.testing.assert_array_equal(np.bincount(subset.y_test), [5] * 10)
    again = data.load("fashion_mnist", limit_train=500, limit_test=50, seed=3)
    np.testing.assert_array_equal(again.x_train, subset.x_train)
    other = data.load("fashion_mnist", limit_train=500, limit_test=50, seed=4)
    assert not np.array_equal(other.y_train, subset.y_train)
    # Every subset image is an image of the full set with the same label.
    indices = subsets.stratified_indices(full.y_train, 500, 3)
    np.testing.assert_array_equal(subset.x_train, full.x_train[indices])
    only_test = data.load("fashion_mnist", limit_test=20)
    assert only_test.x_train is full.x_train and len(only_test.x_test) == 20


# ---------------------------------------------------------------------------------------------
# The class filter and its label remap.
# ---------------------------------------------------------------------------------------------

def test_filter_classes_keeps_the_chosen_classes_renumbered_in_the_given_order():
    labels = np.array([0, 3, 5, 3, 1, 5, 9])
    keep, remapped = subsets.filter_classes(labels, (5, 3))
    np.testing.assert_array_equal(keep, [False, True, True, True, False, True, False])
    np.testing.assert_array_equal(remapped, [1, 0, 1, 0])
    assert remapped.dtype == np.int64
    keep, remapped = subsets.filter_classes(labels, (12, 0))  # A class beyond the labels is simply absent.
    np.testing.assert_array_equal(remapped, [1])
    with pytest.raises(ValueError, match="repeat"):
        subsets.filter_classes(labels, (3, 3))
