"""InitProducerId for idempotent producers (transactional ids come with the
transaction coordinator)."""
from ..protocol.errors import ErrorCode
from .registry import handles


@handles("InitProducerId")
async def init_producer_id(ctx, request) -> dict:
    if request.transactional_id is not None:
        # Transactions are not implemented yet: refuse clearly rather than
        # pretend (clients treat INVALID_REQUEST as fatal, not as a retry loop).
        return {"error_code": ErrorCode.INVALID_REQUEST, "producer_id": -1, "producer_epoch": -1}
    # Like Kafka, a producer without a transactional id always gets a fresh id
    # at epoch 0, whatever id/epoch it sends (KIP-360 fields are for transactions).
    return {
        "error_code": ErrorCode.NONE,
        "producer_id": await ctx.broker.producer_ids.next_id(),
        "producer_epoch": 0,
    }
