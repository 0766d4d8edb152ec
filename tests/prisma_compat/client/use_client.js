// What a Next.js frontend does with the client generated from `chatwithme prisma export`:
// read a conversation with its messages, write a conversation, a message and a reaction.
// Run by tests/prisma_compat/test_prisma_client.py, which checks the rows and prints here.
//   node use_client.js GENERATED_CLIENT_DIR  (DATABASE_URL, USER_ID, CONVERSATION_ID,
//   ANSWER_ID in the environment; prints one JSON object)
const { PrismaClient } = require(process.argv[2]);
const { PrismaPg } = require("@prisma/adapter-pg");

async function main() {
  const adapter = new PrismaPg({ connectionString: process.env.DATABASE_URL });
  const prisma = new PrismaClient({ adapter });
  const userId = process.env.USER_ID;
  try {
    const read = await prisma.conversation.findUnique({
      where: { id: process.env.CONVERSATION_ID },
      include: {
        messages: {
          orderBy: { createdAt: "asc" },
          include: { replies: { select: { id: true } }, children: { select: { id: true } },
                     reactions: true },
        },
        titleUsages: true,
      },
    });
    const created = await prisma.conversation.create({
      data: {
        userId,
        title: "Written by Prisma",
        messages: { create: [{ userId, role: "user", content: "Hello from the frontend" }] },
      },
      include: { messages: true },
    });
    const followUp = await prisma.message.create({
      data: { conversationId: created.id, userId, role: "user", content: "And a second one" },
    });
    const reaction = await prisma.messageReaction.create({
      data: { messageId: process.env.ANSWER_ID, userId, type: "thumbs_up" },
    });
    let duplicate = null;
    try {
      await prisma.messageReaction.create({
        data: { messageId: process.env.ANSWER_ID, userId, type: "thumbs_up" },
      });
    } catch (error) {
      duplicate = error.code ?? String(error);
    }
    const answer = await prisma.message.findUnique({
      where: { id: process.env.ANSWER_ID },
      include: { reactions: true, replyTo: { select: { id: true } } },
    });
    // Revision 0013: a tag on the new conversation, pinned (issue 23 item 4).
    const tag = await prisma.tag.create({
      data: { userId, name: "Baking", color: "#b45309", updatedAt: new Date(),
              conversations: { create: [{ conversationId: created.id, userId }] } },
    });
    const tagged = await prisma.conversation.update({
      where: { id: created.id },
      data: { pinnedAt: new Date() },
      include: { tags: { include: { tag: true } } },
    });
    console.log(JSON.stringify({ read, created, followUp, reaction, duplicate, answer, tag, tagged }));
  } finally {
    await prisma.$disconnect();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
