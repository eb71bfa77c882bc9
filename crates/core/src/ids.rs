//! Identifiers. Each kind of thing has its own type so a user id cannot be passed
//! where an application id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn random() -> Self {
                $name(Uuid::new_v4())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                $name(id)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant: the unit of isolation. Every other record belongs to one.
    TenantId
);
uuid_id!(
    /// An application users sign in to; it is the `aud` of their tokens.
    ApplicationId
);
uuid_id!(UserId);
uuid_id!(ApiKeyId);
uuid_id!(RefreshTokenId);
uuid_id!(
    /// A configured messenger (a Twilio account, a Plivo account, a webhook, …).
    MessengerId
);
uuid_id!(DeliveryId);
uuid_id!(
    /// An action (Auth0's Actions): a script bound to a trigger.
    ActionId
);
uuid_id!(
    /// One deployed, immutable version of an action's code.
    ActionVersionId
);
uuid_id!(
    /// One run of a trigger's actions (Auth0's execution id).
    ExecutionId
);
