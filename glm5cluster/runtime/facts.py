"""The runtime's probes as ``Fact``s (a command plus a pure parser), for fact batches."""

from __future__ import annotations

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact
from glm5cluster.facts.rank_state import RankState
from glm5cluster.runtime.base import Runtime
from glm5cluster.runtime.rank import cluster_dir
from glm5cluster.runtime.survey import Survey, parse_survey, survey_script


class ServiceStateFact(Fact[RankState]):
    """One service's state, as its runtime reads it."""

    name = "service_state"

    def __init__(self, rt: Runtime, target: str, stamp_path: str = "") -> None:
        self.rt, self.target, self.stamp = rt, target, stamp_path

    def command(self) -> Shell:
        return Shell.sh(self.rt.state_script(self.target, self.stamp), sudo=True, description=f"state of {self.target}")

    def parse(self, result: CommandResult) -> RankState:
        return self.rt.parse_state(self.target, result.stdout)


class SurveyFact(Fact[Survey]):
    """Every service of the cluster on the host (both runtimes, any replica, the router)."""

    name = "cluster_services"

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster

    def command(self) -> Shell:
        return Shell.sh(survey_script(self.cluster, cluster_dir(self.cluster)), sudo=True,
                        description=f"services of cluster {self.cluster}")

    def parse(self, result: CommandResult) -> Survey:
        return parse_survey(self.cluster, result.stdout)


class InstalledFact(Fact[str]):
    """What the runtime would run: the venv's SGLang version, or the image id ("" when absent)."""

    name = "sglang_installed"

    def __init__(self, rt: Runtime, image: str | None) -> None:
        self.rt, self.image = rt, image

    def command(self) -> Shell:
        return Shell.sh(self.rt.installed_script(self.image), sudo=True, description="installed SGLang")

    def parse(self, result: CommandResult) -> str:
        return self.parse_text(result.stdout)

    @staticmethod
    def parse_text(stdout: str) -> str:
        lines = stdout.strip().splitlines()
        return lines[-1].strip() if lines else ""
