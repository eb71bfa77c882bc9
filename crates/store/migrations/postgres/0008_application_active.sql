-- Applications can be deactivated (FusionAuth's soft delete) and reactivated.
ALTER TABLE applications ADD COLUMN active BIGINT NOT NULL DEFAULT 1;
