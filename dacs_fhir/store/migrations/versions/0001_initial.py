"""initial schema: resources, versions, search index, dose analytics

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 07:51:27.312221
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dose_report',
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=True),
    sa.Column('recorded', sa.DateTime(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('study_uid', 'sop_instance_uid', name='pk_dose_report')
    )
    op.create_table('dose_study',
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('patient_key', sa.String(length=64), nullable=True),
    sa.Column('patient_ref', sa.String(length=128), nullable=True),
    sa.Column('accession_number', sa.String(length=64), nullable=True),
    sa.Column('started', sa.DateTime(), nullable=True),
    sa.Column('modalities', sa.String(length=64), nullable=True),
    sa.Column('institution', sa.String(length=128), nullable=True),
    sa.Column('study_ref', sa.String(length=128), nullable=True),
    sa.Column('updated', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('study_uid', name=op.f('pk_dose_study'))
    )
    with op.batch_alter_table('dose_study', schema=None) as batch_op:
        batch_op.create_index('ix_dose_study_patient', ['patient_key'], unique=False)
        batch_op.create_index('ix_dose_study_started', ['started'], unique=False)

    op.create_table('idx_code_quantity',
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rtype', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(), nullable=True),
    sa.Column('code', sa.String(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('unit_system', sa.String(), nullable=True),
    sa.Column('unit_code', sa.String(), nullable=True)
    )
    with op.batch_alter_table('idx_code_quantity', schema=None) as batch_op:
        batch_op.create_index('ix_code_quantity_res', ['res_pk', 'param'], unique=False)
        batch_op.create_index('ix_code_quantity_value', ['rtype', 'param', 'code', 'value', 'system', 'unit_code', 'res_pk'], unique=False)

    op.create_table('idx_date',
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rtype', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('low', sa.DateTime(), nullable=False),
    sa.Column('high', sa.DateTime(), nullable=False),
    sa.Column('wide', sa.Boolean(), nullable=False)
    )
    with op.batch_alter_table('idx_date', schema=None) as batch_op:
        batch_op.create_index('ix_date_low', ['rtype', 'param', 'wide', 'low', 'high', 'res_pk'], unique=False)
        batch_op.create_index('ix_date_res', ['res_pk', 'param'], unique=False)

    op.create_table('idx_quantity',
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rtype', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('system', sa.String(), nullable=True),
    sa.Column('code', sa.String(), nullable=True)
    )
    with op.batch_alter_table('idx_quantity', schema=None) as batch_op:
        batch_op.create_index('ix_quantity_res', ['res_pk', 'param'], unique=False)
        batch_op.create_index('ix_quantity_value', ['rtype', 'param', 'code', 'value', 'system', 'res_pk'], unique=False)

    op.create_table('idx_reference',
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rtype', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=True),
    sa.Column('target_id', sa.String(length=255), nullable=True),
    sa.Column('url', sa.String(), nullable=True)
    )
    with op.batch_alter_table('idx_reference', schema=None) as batch_op:
        batch_op.create_index('ix_reference_res', ['res_pk', 'param'], unique=False)
        batch_op.create_index('ix_reference_target', ['target_id', 'target_type', 'param', 'rtype', 'res_pk'], unique=False)

    op.create_table('idx_string',
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rtype', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('norm', sa.String(), nullable=False),
    sa.Column('exact', sa.String(), nullable=False)
    )
    with op.batch_alter_table('idx_string', schema=None) as batch_op:
        batch_op.create_index('ix_string_norm', ['rtype', 'param', 'norm', 'res_pk'], unique=False, postgresql_ops={'norm': 'text_pattern_ops'})
        batch_op.create_index('ix_string_res', ['res_pk', 'param'], unique=False)

    op.create_table('idx_token',
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rtype', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(), nullable=True),
    sa.Column('code', sa.String(), nullable=True)
    )
    with op.batch_alter_table('idx_token', schema=None) as batch_op:
        batch_op.create_index('ix_token_res', ['res_pk', 'param'], unique=False)
        batch_op.create_index('ix_token_value', ['rtype', 'param', 'code', 'system', 'res_pk'], unique=False)

    op.create_table('idx_uri',
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rtype', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('uri', sa.String(), nullable=False)
    )
    with op.batch_alter_table('idx_uri', schema=None) as batch_op:
        batch_op.create_index('ix_uri_res', ['res_pk', 'param'], unique=False)
        batch_op.create_index('ix_uri_value', ['rtype', 'param', 'uri', 'res_pk'], unique=False)

    op.create_table('resource',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('rtype', sa.String(length=64), nullable=False),
    sa.Column('rid', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.DateTime(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_resource')),
    sa.UniqueConstraint('rtype', 'rid', name='uq_resource_rtype_rid')
    )
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.create_index('ix_resource_type_updated', ['rtype', 'last_updated'], unique=False)

    op.create_table('dose_summary',
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('device_key', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=24), nullable=True),
    sa.Column('modality', sa.String(length=16), nullable=True),
    sa.Column('manufacturer', sa.String(length=128), nullable=True),
    sa.Column('model', sa.String(length=128), nullable=True),
    sa.Column('station_name', sa.String(length=64), nullable=True),
    sa.Column('started', sa.DateTime(), nullable=True),
    sa.Column('event_count', sa.Integer(), nullable=True),
    sa.Column('summary_ref', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['study_uid'], ['dose_study.study_uid'], name=op.f('fk_dose_summary_study_uid'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('study_uid', 'kind', 'device_key', name='pk_dose_summary')
    )
    with op.batch_alter_table('dose_summary', schema=None) as batch_op:
        batch_op.create_index('ix_dose_summary_kind_started', ['kind', 'started'], unique=False)

    op.create_table('dose_total',
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('device_key', sa.String(length=255), nullable=False),
    sa.Column('scheme', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('qualifier', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['study_uid'], ['dose_study.study_uid'], name=op.f('fk_dose_total_study_uid'), ondelete='CASCADE')
    )
    with op.batch_alter_table('dose_total', schema=None) as batch_op:
        batch_op.create_index('ix_dose_total_code', ['code', 'kind'], unique=False)
        batch_op.create_index('ix_dose_total_study', ['study_uid', 'kind'], unique=False)

    op.create_table('irradiation_event',
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('device_key', sa.String(length=255), nullable=False),
    sa.Column('event_uid', sa.String(length=64), nullable=False),
    sa.Column('started', sa.DateTime(), nullable=True),
    sa.Column('event_type', sa.String(length=32), nullable=True),
    sa.Column('protocol', sa.String(length=255), nullable=True),
    sa.Column('target_region', sa.String(length=32), nullable=True),
    sa.Column('ctdivol', sa.Float(), nullable=True),
    sa.Column('dlp', sa.Float(), nullable=True),
    sa.Column('ssde', sa.Float(), nullable=True),
    sa.Column('dap', sa.Float(), nullable=True),
    sa.Column('dose_rp', sa.Float(), nullable=True),
    sa.Column('agd', sa.Float(), nullable=True),
    sa.Column('kvp', sa.Float(), nullable=True),
    sa.Column('exposure_time', sa.Float(), nullable=True),
    sa.Column('observation_ref', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['study_uid'], ['dose_study.study_uid'], name=op.f('fk_irradiation_event_study_uid'), ondelete='CASCADE')
    )
    with op.batch_alter_table('irradiation_event', schema=None) as batch_op:
        batch_op.create_index('ix_irradiation_event_protocol', ['kind', 'protocol'], unique=False)
        batch_op.create_index('ix_irradiation_event_study', ['study_uid', 'kind'], unique=False)
        batch_op.create_index('ix_irradiation_event_uid', ['event_uid'], unique=False)

    op.create_table('resource_version',
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('rtype', sa.String(length=64), nullable=False),
    sa.Column('rid', sa.String(length=64), nullable=False),
    sa.Column('last_updated', sa.DateTime(), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('content', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['res_pk'], ['resource.pk'], name=op.f('fk_resource_version_res_pk'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('res_pk', 'version', name='pk_resource_version')
    )
    with op.batch_alter_table('resource_version', schema=None) as batch_op:
        batch_op.create_index('ix_version_type_updated', ['rtype', 'last_updated'], unique=False)
        batch_op.create_index('ix_version_updated', ['last_updated'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('resource_version', schema=None) as batch_op:
        batch_op.drop_index('ix_version_updated')
        batch_op.drop_index('ix_version_type_updated')

    op.drop_table('resource_version')
    with op.batch_alter_table('irradiation_event', schema=None) as batch_op:
        batch_op.drop_index('ix_irradiation_event_uid')
        batch_op.drop_index('ix_irradiation_event_study')
        batch_op.drop_index('ix_irradiation_event_protocol')

    op.drop_table('irradiation_event')
    with op.batch_alter_table('dose_total', schema=None) as batch_op:
        batch_op.drop_index('ix_dose_total_study')
        batch_op.drop_index('ix_dose_total_code')

    op.drop_table('dose_total')
    with op.batch_alter_table('dose_summary', schema=None) as batch_op:
        batch_op.drop_index('ix_dose_summary_kind_started')

    op.drop_table('dose_summary')
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_type_updated')

    op.drop_table('resource')
    with op.batch_alter_table('idx_uri', schema=None) as batch_op:
        batch_op.drop_index('ix_uri_value')
        batch_op.drop_index('ix_uri_res')

    op.drop_table('idx_uri')
    with op.batch_alter_table('idx_token', schema=None) as batch_op:
        batch_op.drop_index('ix_token_value')
        batch_op.drop_index('ix_token_res')

    op.drop_table('idx_token')
    with op.batch_alter_table('idx_string', schema=None) as batch_op:
        batch_op.drop_index('ix_string_res')
        batch_op.drop_index('ix_string_norm', postgresql_ops={'norm': 'text_pattern_ops'})

    op.drop_table('idx_string')
    with op.batch_alter_table('idx_reference', schema=None) as batch_op:
        batch_op.drop_index('ix_reference_target')
        batch_op.drop_index('ix_reference_res')

    op.drop_table('idx_reference')
    with op.batch_alter_table('idx_quantity', schema=None) as batch_op:
        batch_op.drop_index('ix_quantity_value')
        batch_op.drop_index('ix_quantity_res')

    op.drop_table('idx_quantity')
    with op.batch_alter_table('idx_date', schema=None) as batch_op:
        batch_op.drop_index('ix_date_res')
        batch_op.drop_index('ix_date_low')

    op.drop_table('idx_date')
    with op.batch_alter_table('idx_code_quantity', schema=None) as batch_op:
        batch_op.drop_index('ix_code_quantity_value')
        batch_op.drop_index('ix_code_quantity_res')

    op.drop_table('idx_code_quantity')
    with op.batch_alter_table('dose_study', schema=None) as batch_op:
        batch_op.drop_index('ix_dose_study_started')
        batch_op.drop_index('ix_dose_study_patient')

    op.drop_table('dose_study')
    op.drop_table('dose_report')
