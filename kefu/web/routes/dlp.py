"""POST /api/v1/dlp/scan: what the secret and PII guard finds in a text.

For integrations and the chat widget (to warn before sending). Any authenticated
caller; nothing scanned here is stored or logged.
"""

from __future__ import annotations

from fastapi import APIRouter

from kefu.domain import dlp
from kefu.web.deps import PrincipalDep
from kefu.web.schemas import DlpFinding, DlpScanIn, DlpScanOut

router = APIRouter(prefix="/dlp", tags=["dlp"])


@router.post("/scan", response_model=DlpScanOut)
async def scan(body: DlpScanIn, principal: PrincipalDep) -> DlpScanOut:
    findings = dlp.scan(body.text, known_txids=body.known_txids)
    masked, _ = dlp.mask_secrets(body.text, findings)
    return DlpScanOut(
        findings=[DlpFinding(kind=f.kind.value, start=f.start, end=f.end) for f in findings],
        masked=masked,
    )
