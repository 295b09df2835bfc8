"""The time a heavy call is expected to take, said before it starts (the app's pages show it)."""
import pytest

from igpt_lite.estimate import Speed, forward_seconds, measure, sampling_seconds, say_seconds
from conftest import tiny_model


def test_measure_times_the_model_itself():
    speed = measure(tiny_model(), batch=3)
    assert speed.batch == 3 and speed.tokens_per_s > 0 and speed.step_s > 0


def test_whole_image_forwards_scale_with_the_tokens():
    speed = Speed(tokens_per_s=1000.0, step_s=0.01, batch=1)
    assert forward_seconds(speed, 10, 30) == pytest.approx(0.3)


def test_sampling_time_counts_the_prompt_each_new_pixel_and_the_growing_cache():
    model = tiny_model()  # 6×5 = 30 pixels
    speed = Speed(tokens_per_s=1000.0, step_s=0.01, batch=2)
    everything, half, nothing_left = (sampling_seconds(model, speed, p) for p in (0, 15, 30))
    assert everything > half > nothing_left
    # 30 steps of 10 ms, each a little longer for the cache it reads, and the start token's forward
    assert 0.30 < everything < 0.30 * 2
    assert nothing_left == pytest.approx(2 * 31 / 1000)  # the prompt's forward only


@pytest.mark.parametrize("seconds, said", [(0.4, "under a second"), (42, "about 42 s"), (600, "about 10 min"),
                                           (9000, "about 2.5 h")])
def test_said_in_words_a_person_reads(seconds, said):
    assert say_seconds(seconds) == said
