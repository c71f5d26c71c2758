// Timeline retention (storage.retention): old rows leave the timeline, and with it the archive, mobile
// history and resend detection, which are views of it (DESIGN.md). Rows still pending offline delivery stay.
import { defineModule } from "../modules/module.js";

const DAY = 86_400_000;

export const retentionModule = defineModule({
  name: "retention",
  setup(api) {
    const { days, unarchivedDays, intervalSeconds } = api.config.storage.retention;
    if (days === 0 && unarchivedDays === 0) return;
    api.setInterval(async () => {
      const now = Date.now();
      try {
        const removed = await api.store.timeline.expire({
          before: days > 0 ? now - days * DAY : undefined,
          unarchivedBefore: unarchivedDays > 0 ? now - unarchivedDays * DAY : undefined,
        });
        if (removed !== 0) api.log.info({ removed }, "retention: removed old timeline rows");
      } catch (err) {
        api.log.warn({ err }, "retention: removing old rows failed; trying again at the next interval");
      }
    }, intervalSeconds * 1000);
  },
});
