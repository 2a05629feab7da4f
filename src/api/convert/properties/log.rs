//! LogService requests.

use super::*;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn log_requests_convert_or_name_fields(
        id in text(),
        a in prop_oneof![Just(0i64), Just(-1), any::<i64>()],
        b in prop_oneof![Just(0i64), Just(-1), any::<i64>()],
        by_index in any::<bool>(),
        of_event in any::<bool>(),
    ) {
        use crate::domain::tlog::{GetCheckpoint, GetConsistencyProof, GetInclusionProof};
        use proto::get_inclusion_proof_request::Leaf;
        let checkpoint = proto::GetCheckpointRequest { tree_size: a };
        judged("GetCheckpointRequest", GetCheckpoint::try_from(checkpoint))?;
        let leaf = match by_index {
            true => Some(Leaf::LeafIndex(b)),
            false if id.is_empty() => None,
            false if of_event => Some(Leaf::PreferenceEventId(id)),
            false => Some(Leaf::RecordId(id)),
        };
        let inclusion = proto::GetInclusionProofRequest { leaf, tree_size: a };
        judged("GetInclusionProofRequest", GetInclusionProof::try_from(inclusion))?;
        let consistency = proto::GetConsistencyProofRequest { old_size: a, new_size: b };
        judged("GetConsistencyProofRequest", GetConsistencyProof::try_from(consistency))?;
    }
}
