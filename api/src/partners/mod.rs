//! Partners: who may call `/v1` (admin and partner keys), metering of
//! their renditions, and the feeder that turns their bulk jobs into work.

pub mod admin;
pub mod bulk_feeder;
pub mod metering;
pub mod partner_access;
