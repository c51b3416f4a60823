//! The v2 endpoints of the rooms service as harness calls, each
//! spelled the way ws-agent will send it.

use super::*;

use dyschat_protocol::wire::{
    BanList, BanState, BlockRequest, BlockState, InviteState, MemberState, ModerateRequest,
    MyRoomList, OpenDmRequest, PageRequest, Role, RoleState, RoomDeleted, SetRoleRequest,
    TargetRequest, UpdateRoomBody, UpdateRoomRequest, UserList,
};

fn target(room_id: &str, actor: &str, user: &str) -> TargetRequest {
    TargetRequest {
        room_id: room_id.into(),
        actor_id: actor.into(),
        user_id: user.into(),
    }
}

fn page(room_id: &str, user: &str) -> PageRequest {
    PageRequest {
        room_id: room_id.into(),
        user_id: user.into(),
        limit: 0,
        cursor: None,
    }
}

impl Harness {
    pub(crate) async fn update(
        &self,
        room_id: &str,
        user: &str,
        changes: UpdateRoomBody,
    ) -> Result<Room, ApiError> {
        let req = UpdateRoomRequest {
            room_id: room_id.into(),
            user_id: user.into(),
            changes,
        };
        self.call(subjects::rooms::UPDATE, &req).await
    }

    pub(crate) async fn set_topic(
        &self,
        room_id: &str,
        user: &str,
        topic: &str,
    ) -> Result<Room, ApiError> {
        let changes = UpdateRoomBody {
            topic: Some(topic.into()),
            ..Default::default()
        };
        self.update(room_id, user, changes).await
    }

    pub(crate) async fn delete(&self, room_id: &str, user: &str) -> Result<RoomDeleted, ApiError> {
        self.call(subjects::rooms::DELETE, &room_as(room_id, user))
            .await
    }

    pub(crate) async fn invite(
        &self,
        room_id: &str,
        actor: &str,
        user: &str,
    ) -> Result<InviteState, ApiError> {
        self.call(subjects::rooms::INVITE, &target(room_id, actor, user))
            .await
    }

    pub(crate) async fn uninvite(
        &self,
        room_id: &str,
        actor: &str,
        user: &str,
    ) -> Result<InviteState, ApiError> {
        self.call(subjects::rooms::UNINVITE, &target(room_id, actor, user))
            .await
    }

    pub(crate) async fn set_role(
        &self,
        room_id: &str,
        actor: &str,
        user: &str,
        role: Role,
    ) -> Result<RoleState, ApiError> {
        let req = SetRoleRequest {
            room_id: room_id.into(),
            actor_id: actor.into(),
            user_id: user.into(),
            role,
        };
        self.call(subjects::rooms::SET_ROLE, &req).await
    }

    pub(crate) async fn transfer(
        &self,
        room_id: &str,
        actor: &str,
        user: &str,
    ) -> Result<Room, ApiError> {
        self.call(
            subjects::rooms::TRANSFER_OWNER,
            &target(room_id, actor, user),
        )
        .await
    }

    fn moderate(room_id: &str, actor: &str, user: &str, reason: &str) -> ModerateRequest {
        ModerateRequest {
            room_id: room_id.into(),
            actor_id: actor.into(),
            user_id: user.into(),
            reason: reason.into(),
        }
    }

    pub(crate) async fn kick(
        &self,
        room_id: &str,
        actor: &str,
        user: &str,
        reason: &str,
    ) -> Result<MemberState, ApiError> {
        let req = Harness::moderate(room_id, actor, user, reason);
        self.call(subjects::rooms::KICK, &req).await
    }

    pub(crate) async fn ban(
        &self,
        room_id: &str,
        actor: &str,
        user: &str,
        reason: &str,
    ) -> Result<BanState, ApiError> {
        let req = Harness::moderate(room_id, actor, user, reason);
        self.call(subjects::rooms::BAN, &req).await
    }

    pub(crate) async fn unban(
        &self,
        room_id: &str,
        actor: &str,
        user: &str,
    ) -> Result<BanState, ApiError> {
        self.call(subjects::rooms::UNBAN, &target(room_id, actor, user))
            .await
    }

    pub(crate) async fn bans(&self, room_id: &str, user: &str) -> Result<BanList, ApiError> {
        self.call(subjects::rooms::BANS, &page(room_id, user)).await
    }

    pub(crate) async fn my_rooms(&self, user: &str) -> Result<MyRoomList, ApiError> {
        self.call(subjects::rooms::MY_ROOMS, &page("", user)).await
    }

    pub(crate) async fn my_rooms_page(
        &self,
        user: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<MyRoomList, ApiError> {
        let req = PageRequest {
            limit,
            cursor: cursor.map(String::from),
            ..page("", user)
        };
        self.call(subjects::rooms::MY_ROOMS, &req).await
    }

    /// `user` (a registered user, named `username`) opens the direct room with `peer`.
    pub(crate) async fn open_dm(&self, user: &UserView, peer: &str) -> Result<Room, ApiError> {
        let req = OpenDmRequest {
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            peer_id: peer.into(),
        };
        self.call(subjects::rooms::OPEN_DM, &req).await
    }

    pub(crate) async fn block(&self, actor: &str, user: &str) -> Result<BlockState, ApiError> {
        let req = BlockRequest {
            actor_id: actor.into(),
            user_id: user.into(),
        };
        self.call(subjects::rooms::BLOCK, &req).await
    }

    pub(crate) async fn unblock(&self, actor: &str, user: &str) -> Result<BlockState, ApiError> {
        let req = BlockRequest {
            actor_id: actor.into(),
            user_id: user.into(),
        };
        self.call(subjects::rooms::UNBLOCK, &req).await
    }

    pub(crate) async fn blocks(&self, user: &str) -> Result<UserList, ApiError> {
        self.call(subjects::rooms::BLOCKS, &page("", user)).await
    }

    /// The standing `access` answers for (room, user).
    pub(crate) async fn standing(
        &self,
        room_id: &str,
        user: &str,
    ) -> dyschat_protocol::policy::Standing {
        self.access(room_id, user).await.expect("access").standing
    }
}
