use serde_json::json;
use tessera_core::ids::{DeliveryId, MessengerId, TenantId};
use tessera_core::messaging::{Channel, Purpose};
use tessera_core::messengers::{Delivery, MessengerConfig, MessengerType};
use tessera_core::store::MessengerStore;

use crate::support::*;

fn config(c: &Ctx, name: &str) -> MessengerConfig {
    MessengerConfig {
        id: MessengerId::random(),
        tenant_id: c.tenant,
        kind: MessengerType::Twilio,
        name: name.into(),
        url: Some("http://127.0.0.1:1".into()),
        settings: json!({"accountSID": "AC1"}).as_object().unwrap().clone(),
        sealed_secrets: "v1.k.x".into(),
        channels: vec![Channel::Sms, Channel::Voice],
        priority: 3,
        country_codes: vec![1, 44],
        preferred_country_codes: vec![91],
        created_at: T0,
        updated_at: T0,
    }
}

contract!(messengers_round_trip, |c| {
    let a = config(&c, "a");
    c.store.insert_messenger(&a).await.unwrap();
    assert_eq!(c.store.messenger(c.tenant, a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(c.store.messenger(TenantId::random(), a.id).await.unwrap(), None, "another tenant's is not found");
    assert_eq!(c.store.messenger_by_id(a.id).await.unwrap(), Some(a.clone()), "a callback names only the messenger");
    assert_eq!(c.store.messenger_by_id(MessengerId::random()).await.unwrap(), None);
    let mut b = config(&c, "b");
    b.created_at = T0.plus(std::time::Duration::from_secs(1));
    b.channels = vec![];
    c.store.insert_messenger(&b).await.unwrap();
    assert_eq!(c.store.messengers(c.tenant).await.unwrap(), vec![a.clone(), b.clone()]);
    let mut a2 = a.clone();
    a2.name = "renamed".into();
    a2.priority = -1;
    assert!(c.store.update_messenger(&a2).await.unwrap());
    assert_eq!(c.store.messenger(c.tenant, a.id).await.unwrap().unwrap().name, "renamed");
    assert!(c.store.delete_messenger(c.tenant, a.id).await.unwrap());
    assert!(!c.store.delete_messenger(c.tenant, a.id).await.unwrap());
    assert_eq!(c.store.messengers(c.tenant).await.unwrap().len(), 1);
});

contract!(deliveries_record_and_take_status_callbacks, |c| {
    let d = Delivery {
        id: DeliveryId::random(),
        tenant_id: c.tenant,
        messenger_id: Some(MessengerId::random()),
        provider: "twilio".into(),
        to: "+15554443232".into(),
        channel: Channel::Sms,
        purpose: Purpose::SecondFactor,
        provider_message_id: Some("SM123".into()),
        status: "queued".into(),
        error_code: None,
        error_message: None,
        attempts: 2,
        price: Some("-0.0075".into()),
        price_unit: Some("USD".into()),
        created_at: T0,
        updated_at: T0,
    };
    c.store.insert_delivery(&d).await.unwrap();
    let later = T0.plus(std::time::Duration::from_secs(3));
    assert!(c.store.update_delivery_status("twilio", "SM123", "undelivered", Some("30003"), later).await.unwrap());
    assert!(!c.store.update_delivery_status("twilio", "SM999", "delivered", None, later).await.unwrap());
    let (list, total) = c.store.deliveries(c.tenant, 0, 10).await.unwrap();
    assert_eq!(total, 1);
    let got = &list[0];
    assert_eq!((got.status.as_str(), got.error_code.as_deref(), got.updated_at), ("undelivered", Some("30003"), later));
    assert_eq!((got.attempts, got.price.as_deref(), got.purpose), (2, Some("-0.0075"), Purpose::SecondFactor));
});

contract!(voice_prompts_are_taken_once_and_expire, |c| {
    let later = T0.plus(std::time::Duration::from_secs(600));
    c.store.put_voice_prompt("d1", "v1.k.text", later).await.unwrap();
    assert_eq!(c.store.take_voice_prompt("d1", T0).await.unwrap().as_deref(), Some("v1.k.text"));
    assert_eq!(c.store.take_voice_prompt("d1", T0).await.unwrap(), None, "spoken once");
    c.store.put_voice_prompt("d2", "v1.k.old", T0).await.unwrap();
    assert_eq!(c.store.take_voice_prompt("d2", later).await.unwrap(), None, "expired");
});
