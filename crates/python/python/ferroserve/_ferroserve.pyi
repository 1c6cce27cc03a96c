from typing import Any, Dict, List, Optional

import numpy as np
import pyarrow as pa

__version__: str

class Model:
    @staticmethod
    def load(path: str, threads: int = 1) -> "Model": ...
    @property
    def path(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def runtime(self) -> str: ...
    @property
    def signature(self) -> Dict[str, List[Dict[str, Any]]]: ...
    def predict(self, inputs: Dict[str, Any]) -> Dict[str, np.ndarray]: ...
    def predict_arrow(
        self,
        batch: pa.RecordBatch,
        columns: Optional[List[str]] = None,
        keep: Optional[List[str]] = None,
        map: Optional[Dict[str, List[str]]] = None,
        outputs: Optional[List[str]] = None,
    ) -> pa.RecordBatch: ...
    def output_schema(
        self,
        schema: pa.Schema,
        columns: Optional[List[str]] = None,
        keep: Optional[List[str]] = None,
        map: Optional[Dict[str, List[str]]] = None,
        outputs: Optional[List[str]] = None,
    ) -> pa.Schema: ...

def cached_model(path: str) -> Model: ...
def loads() -> int: ...
