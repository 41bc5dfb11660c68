"""apportion.largest_remainder: whole shares that sum to the count, ties broken by the caller's key."""

from mathlora.data.apportion import largest_remainder


def test_shares_sum_to_the_count_and_follow_the_weights():
    assert largest_remainder(100000, {1: 4, 2: 3, 3: 2, 4: 1}, tie_key=lambda k: k) == {1: 40000, 2: 30000,
                                                                                       3: 20000, 4: 10000}
    shares = largest_remainder(7, {"a": 1.0, "b": 1.0, "c": 1.0}, tie_key=lambda k: k)
    assert shares == {"a": 3, "b": 2, "c": 2} and sum(shares.values()) == 7


def test_ties_go_to_the_smallest_tie_key_each_asked_once():
    asked = []

    def key(k):
        asked.append(k)
        return {"a": 2, "b": 0, "c": 1}[k]

    assert largest_remainder(1, {"a": 1.0, "b": 1.0, "c": 1.0}, tie_key=key) == {"a": 0, "b": 1, "c": 0}
    assert asked == ["a", "b", "c"]
