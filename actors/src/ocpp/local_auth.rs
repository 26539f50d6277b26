//! Local authorisation: the list of idTags a station may accept on its own when the
//! central system cannot be asked, and its authorisation cache.

use serde::{Deserialize, Serialize};

use super::core::IdTagInfo;
use super::strict::{objects, some_object};
use super::types::IdToken;

/// One entry of a local authorisation list; without `id_tag_info` (in a differential
/// update) the entry is removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationData {
    pub id_tag: IdToken,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_object"
    )]
    pub id_tag_info: Option<IdTagInfo>,
}

ocpp_enum! {
    pub enum UpdateType {
        Differential = "Differential",
        Full = "Full",
    }
}

/// SendLocalList.req: replace (`Full`) or patch (`Differential`) the station's list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendLocalListRequest {
    /// The list's version after this update.
    pub list_version: i32,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "objects"
    )]
    pub local_authorization_list: Vec<AuthorizationData>,
    pub update_type: UpdateType,
}

ocpp_enum! {
    pub enum UpdateStatus {
        Accepted = "Accepted",
        Failed = "Failed",
        NotSupported = "NotSupported",
        VersionMismatch = "VersionMismatch",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendLocalListResponse {
    pub status: UpdateStatus,
}

/// GetLocalListVersion.req: no fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetLocalListVersionRequest {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetLocalListVersionResponse {
    /// 0: the list is empty; -1: the station has no local list.
    pub list_version: i32,
}

/// ClearCache.req: no fields; empties the station's authorisation cache.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearCacheRequest {}

ocpp_enum! {
    pub enum ClearCacheStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearCacheResponse {
    pub status: ClearCacheStatus,
}
