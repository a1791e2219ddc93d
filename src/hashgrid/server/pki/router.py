from fastapi import APIRouter, Request
from fastapi.responses import Response

from hashgrid.contracts.api.tls import CertificateIssued, CertificateRequest
from hashgrid.server.errors import Invalid
from hashgrid.server.pki.service import ca_of
from hashgrid.server.policy import Caller

router = APIRouter(prefix="/api/v1", tags=["tls"])

PEM = "application/x-pem-file"


@router.get(
    "/ca",
    response_class=Response,
    responses={200: {"content": {PEM: {"schema": {"type": "string"}}}}},
)
async def get_ca(request: Request) -> Response:
    """The CA certificate (PEM) that signs this control plane's and its gateways' certificates.
    Public: a client trusts it only once its hash matches one given out of band (the join
    token carries it)."""
    return Response(ca_of(request).cert_pem, media_type=PEM)


@router.post("/gateway/certificate")
async def issue_gateway_certificate(
    body: CertificateRequest, request: Request, caller: Caller
) -> CertificateIssued:
    """A certificate for a gateway's listeners, signed by the control plane's CA, for the key
    and host names of the gateway's certificate request."""
    ca = ca_of(request)
    try:
        cert = ca.sign_request(body.csr.encode())
    except ValueError as e:
        raise Invalid(f"not a usable certificate request: {e}") from e
    return CertificateIssued(certificate=cert.decode(), ca=ca.cert_pem.decode())
