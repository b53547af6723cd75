"""Constants shared by handlers."""

# Kafka's "authorized operations not requested" marker (Integer.MIN_VALUE).
OPERATIONS_NOT_REQUESTED = -(2**31)

# With no authorizer configured every operation is allowed; these are the bit
# sets Kafka reports then (AclOperation codes per resource type).
ALL_TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
# CLUSTER: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
# IDEMPOTENT_WRITE (AclEntry.supportedOperations; the token operations are not among them).
ALL_CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))
