"""The class page in two real browsers: the lecturer starts a class and sends a poll, a student opens
the join link, joins and answers, and the lecturer's live histogram (a fragment that reruns every
second while the poll is open) counts the answer without a click."""

from __future__ import annotations

import re
import time

import pytest

from cnnviz import convolution as conv

# Each step waits for one rerun of a page; a loaded CI machine took over Playwright's default 5 s
# for the student's page after Join (the question was on the page just after the timeout).
STEP_TIMEOUT_MS = 30_000

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser]

EXCEPTION = '[data-testid="stException"]'


def test_a_student_joins_by_the_link_answers_and_the_lecturer_sees_it(streamlit_app, _chromium, wait_idle):
    started = time.monotonic()
    lecturer_context = _chromium.new_context(viewport={"width": 1280, "height": 900})
    student_context = _chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        lecturer = lecturer_context.new_page()
        lecturer.set_default_timeout(20_000)
        lecturer.goto(f"{streamlit_app}/classroom")
        lecturer.wait_for_selector("h1:has-text('The class')")
        wait_idle(lecturer)
        lecturer.locator(".st-key-classroom_title input").fill("Browser class")
        lecturer.locator(".st-key-classroom_title input").press("Enter")
        wait_idle(lecturer)
        lecturer.locator(".st-key-classroom_start button").click()
        code_block = lecturer.locator('[data-testid="stCode"]').filter(has_text="?class=")
        expect(code_block).to_be_visible(timeout=STEP_TIMEOUT_MS)
        link = code_block.inner_text().strip()
        assert re.fullmatch(re.escape(streamlit_app) + r"/classroom\?class=[A-Z2-9]{12}", link), link
        expect(lecturer.locator('[data-testid="stImage"] img').first).to_be_visible(timeout=STEP_TIMEOUT_MS)  # The QR code.
        wait_idle(lecturer)
        lecturer.locator(".st-key-classroom_send button").click()
        expect(lecturer.get_by_text("0 of 0", exact=True)).to_be_visible(timeout=STEP_TIMEOUT_MS)

        student = student_context.new_page()
        student.set_default_timeout(20_000)
        student.goto(link)
        student.wait_for_selector("h1:has-text('The class')")
        wait_idle(student)
        student.locator(".st-key-classroom_name input").fill("Ana")
        student.locator(".st-key-classroom_name input").press("Enter")
        wait_idle(student)
        student.locator(".st-key-classroom_join button").click()
        truth = conv.output_size(28, 3, 1, "valid")
        choice = student.locator(".st-key-classroom_choice_1").get_by_text(f"{truth} × {truth}", exact=True)
        expect(choice).to_be_visible(timeout=STEP_TIMEOUT_MS)
        choice.click()
        wait_idle(student)
        student.locator(".st-key-classroom_answer button").click()
        expect(student.get_by_text(re.compile("Your answer: .* until the reveal"))).to_be_visible(timeout=STEP_TIMEOUT_MS)

        # No click on the lecturer's side: the live fragment picks the answer up within a few seconds.
        expect(lecturer.get_by_text("1 of 1", exact=True)).to_be_visible(timeout=STEP_TIMEOUT_MS)
        for page in (lecturer, student):
            assert page.locator(EXCEPTION).count() == 0
        print(f"classroom browser flow: {time.monotonic() - started:.1f} s")
    finally:
        student_context.close()
        lecturer_context.close()
