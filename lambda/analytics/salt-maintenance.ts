/**
 * Entry point of the hourly salt maintenance function (lib/salt-table.ts deploys and schedules
 * it): `maintainSalts()` on the salt table, so tomorrow's salt exists before midnight and no salt
 * outlives the day after its own. Logs which days it deleted (never a salt).
 */
import { DynamoDbSaltStore, maintainSalts, type SaltMaintenance } from './dynamodb-salt-store';

let store: DynamoDbSaltStore | undefined;

export async function handler(): Promise<SaltMaintenance> {
  const tableName = process.env.SALT_TABLE_NAME;
  if (!tableName) throw new Error('salt maintenance: SALT_TABLE_NAME is not set (the construct sets it to the salt table)');
  store ??= new DynamoDbSaltStore({ tableName });
  const result = await maintainSalts(store);
  console.log(JSON.stringify({ level: 'INFO', message: 'salt maintenance done', createdTomorrow: result.createdTomorrow, deleted: result.deleted }));
  return result;
}
