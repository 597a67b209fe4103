"""Type stubs of the native module (crates/perplex-py/src/lib.rs). Use the
package's API (``perplex.load`` and friends), which checks Python types and
fills in the defaults; this module takes them ready-made."""

from typing import Any, Callable, Dict, List, Optional, Tuple, TypedDict

__version__: str

class InputSpec(TypedDict):
    texts: List[str]
    files: List[str]
    split: str
    jsonl: List[str]
    field: str

class Settings(TypedDict):
    protocol: str
    context: int
    stride: Optional[int]
    max_length: int
    max_tokens: Optional[int]
    bos: str
    batch_size: Optional[int]
    join: Optional[str]

class ScoreSettings(TypedDict):
    protocol: str
    context: int
    stride: Optional[int]
    max_length: int
    bos: str
    batch_size: Optional[int]

Progress = Optional[Callable[[int, int], Any]]

class Model:
    @staticmethod
    def load(spec: str, fast: bool = False, threads: Optional[int] = None) -> Model: ...
    @property
    def spec(self) -> str: ...
    @property
    def context_length(self) -> Optional[int]: ...
    def identity_json(self) -> str: ...
    def token_texts(self, ids: List[int]) -> List[str]: ...
    def evaluate(
        self,
        inputs: InputSpec,
        settings: Settings,
        per_token: bool = False,
        progress: Progress = None,
    ) -> Tuple[str, Optional[Dict[str, bytes]]]: ...
    def score_rows(
        self, texts: List[str], ids: List[str], indices: List[int], settings: ScoreSettings
    ) -> Dict[str, List[Any]]: ...

def compare(
    models: List[Model],
    inputs: InputSpec,
    settings: Settings,
    confidence: float,
    bits_per_byte: bool,
    progress: Progress = None,
) -> str: ...
def sweep(
    run_dir: str,
    base: Optional[str],
    inputs: InputSpec,
    settings: Settings,
    fast: bool = False,
    threads: Optional[int] = None,
    progress: Progress = None,
) -> str: ...
def _panic_for_tests() -> None: ...
