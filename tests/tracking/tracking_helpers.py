"""Helpers shared by the tracking tests."""

from __future__ import annotations


def start_together(tracking_uri: str, experiment: str, study: str, workers: int = 4) -> list[str]:
    """The parent run id each of ``workers`` threads gets when they all start ``study``'s tracker at once."""
    import threading

    from workbench.tracking import StudyTracker

    ids: list[str] = []
    barrier = threading.Barrier(workers)

    def start() -> None:
        barrier.wait()
        ids.append(StudyTracker(tracking_uri, experiment, study).parent_run_id)

    threads = [threading.Thread(target=start) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids
